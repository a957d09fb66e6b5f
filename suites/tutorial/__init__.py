"""The dockerd tutorial (``docs/tutorial.md``): one scenario per step, run as the walkthrough says."""
