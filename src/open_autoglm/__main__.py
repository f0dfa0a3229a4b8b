from open_autoglm.cli import main

raise SystemExit(main())
