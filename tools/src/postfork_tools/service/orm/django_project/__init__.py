"""A minimal Django project serving the summary endpoint through Django's ORM
(``DJANGO_SETTINGS_MODULE=postfork_tools.service.orm.django_project.settings``)."""
