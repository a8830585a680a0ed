"""The local stack: the synthesized CloudFormation template, run on one machine.

Reads only the template and the asset folders in cdk.out (never infra/), and is never
imported by lambdas/ or infra/. Entry point: `python -m local` (local/cli.py).
"""
