from qr.cli.main import main

main()
