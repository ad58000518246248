"""Django on postfork (``pip install 'postfork[django]'``)::

    DATABASES = {"default": {"ENGINE": "postfork.django", "NAME": "shop", ...,
                             "OPTIONS": {"pool": {"max_size": 4}}}}
    INSTALLED_APPS = [..., "postfork.django"]

``ENGINE`` gives Django postfork's pool; the app warms every worker before its first request.
"""
