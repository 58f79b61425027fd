"""The ``ani`` command line: thin click commands over the library, one module per group."""
