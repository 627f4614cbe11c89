"""`python -m launch ...` is `dwm-net ...` (how the launcher starts its children)."""

from launch.cli import main

main()
