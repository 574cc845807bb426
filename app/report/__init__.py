"""The daily report: building it from the store, mailing it through a sending account, and the loop that does
so once a day beside the dispatcher."""
