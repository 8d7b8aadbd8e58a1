/* fake */
int fork(void) { return 0; }
