from reverse_etl.cli import main

raise SystemExit(main())
