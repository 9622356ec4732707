"""python -m features.synthetic: see features.synthetic.cli."""

from features.synthetic.cli import main

raise SystemExit(main())
