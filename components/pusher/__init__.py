"""The pusher's TFX adapter: no blessing or signature verdict, no push (``component.py``).

Everything under the model base path is written through ``components.serving``.
"""
