from digitlab.cli.main import main

raise SystemExit(main())
