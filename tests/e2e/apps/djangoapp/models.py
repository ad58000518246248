from django.db import models


class Note(models.Model):
    body = models.CharField(max_length=40)
    hits = models.IntegerField(default=0)

    class Meta:
        db_table = "postfork_e2e_notes"
