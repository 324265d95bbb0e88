"""Built-in tasks; each is named by a `_target_` in conf/task/."""
