"""Tasks: the shared to-do list (TaskService), persisted, with a change stream."""
