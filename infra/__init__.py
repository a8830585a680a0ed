"""CDK constructs and the stack of the task backend (one construct per resource group)."""
