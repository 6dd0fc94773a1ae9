"""The dialog core: DialogService.Converse and the streaming, interruptible turn loop."""
