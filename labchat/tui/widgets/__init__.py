"""labchat.tui.widgets."""
