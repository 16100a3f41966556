from seawatch.cli import main

main()
