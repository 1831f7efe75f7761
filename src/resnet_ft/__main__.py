"""``python -m resnet_ft`` runs the command-line interface."""

from resnet_ft.cli.app import main

raise SystemExit(main())
