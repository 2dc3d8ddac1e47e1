from wattgap.cli import main

main()
