/* fake */
int put_page(void) { return 0; }
