"""The client core shared by line mode and the Textual app, and the `labchat` command line."""
