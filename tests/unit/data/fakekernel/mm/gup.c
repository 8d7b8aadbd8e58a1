/* fake mm/gup.c */
int pin_user_pages(void)
{
	return 0;
}
