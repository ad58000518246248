"""The shop's tables (migrate, run_syncdb: the shop app has no migrations) and its rows."""

import os

import django


def seed(customers: int = 20) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.apps.django_shop.settings")
    django.setup()
    from django.core.management import call_command

    from .models import Customer, Line, Order

    call_command("migrate", run_syncdb=True, verbosity=0)
    Line.objects.all().delete()
    Order.objects.all().delete()
    Customer.objects.all().delete()
    for number in range(1, customers + 1):
        person = Customer.objects.create(
            id=number, name=f"customer {number}", email=f"c{number}@example.com"
        )
        for order_number in range(4):
            order = Order.objects.create(customer=person)
            Line.objects.bulk_create(
                Line(order=order, sku=f"sku-{order_number}-{n}", quantity=n + 1, price="9.50")
                for n in range(3)
            )


if __name__ == "__main__":
    seed()
