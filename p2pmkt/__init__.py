"""p2pmkt: a permissioned blockchain for merchants' marketing information.

Only ``__version__`` lives here: importing the package must stay cheap so the CLI starts fast.
"""

__version__ = "0.1.0"
