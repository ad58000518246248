from django.db import models


class Account(models.Model):  # type: ignore[misc]
    id = models.BigIntegerField(primary_key=True)
    name = models.CharField(max_length=64)

    class Meta:
        managed = False
        db_table = "accounts"


class Order(models.Model):  # type: ignore[misc]
    id = models.BigIntegerField(primary_key=True)
    account = models.ForeignKey(Account, on_delete=models.DO_NOTHING, db_constraint=False)
    amount_cents = models.IntegerField()
    category = models.CharField(max_length=32)
    created_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = "orders"
