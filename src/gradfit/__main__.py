"""``python -m gradfit``: the same as the ``gradfit`` command."""

from gradfit.cli.app import main

if __name__ == "__main__":
    main()
