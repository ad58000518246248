from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []
    operations = [
        migrations.CreateModel(
            name="Note",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("body", models.CharField(max_length=40)),
                ("hits", models.IntegerField(default=0)),
            ],
            options={"db_table": "postfork_e2e_notes"},
        )
    ]
