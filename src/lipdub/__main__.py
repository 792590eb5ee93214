"""`python -m lipdub` (also what `torchrun -m lipdub` runs)."""

from lipdub.cli import main

raise SystemExit(main())
