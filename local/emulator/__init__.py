"""The embedded AWS: moto in a supervised child process, patched, provisioned from the template."""
