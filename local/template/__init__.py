"""The synthesized template: found in cdk.out, read into the specs the stack runs, resolved, reported."""
