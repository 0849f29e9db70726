from logmail.cli.main import main

main()
