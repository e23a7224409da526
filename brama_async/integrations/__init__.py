"""
Optional integrations with other libraries.

Each submodule imports its own third-party dependency, so importing
``brama_async`` never requires them.  Install the matching extra, for example
``pip install 'brama-async[starlette]'`` for `brama_async.integrations.starlette`.
"""
