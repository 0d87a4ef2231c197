from ._boot import main

main()
