import os

from django.db import connection, connections, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .models import Note


def _session() -> int:
    return int(connection.connection.thread_id())


def read(request: HttpRequest, note_id: int) -> JsonResponse:
    note = Note.objects.filter(pk=note_id).first()
    alias = note._state.db if note else None  # a replica's, under the replica router
    return JsonResponse(
        {
            "body": note.body if note else None,
            "pid": os.getpid(),
            "session": int(connections[alias].connection.thread_id()) if alias else None,
            "db": alias,
        },
        status=200 if note else 404,
    )


@csrf_exempt
def write(request: HttpRequest) -> JsonResponse:
    with transaction.atomic():
        note = Note.objects.create(body=request.GET.get("body", "x"))
    return JsonResponse({"id": note.pk, "pid": os.getpid(), "session": _session()})


@csrf_exempt
def hit(request: HttpRequest, note_id: int) -> JsonResponse:
    """select_for_update inside atomic(): the row is locked until the transaction ends."""
    with transaction.atomic():
        note = Note.objects.select_for_update().get(pk=note_id)
        note.hits += 1
        note.save(update_fields=["hits"])
    return JsonResponse({"hits": note.hits, "pid": os.getpid(), "session": _session()})


# The async ORM (Django runs each query in the request's thread for sync code).


async def aread(request: HttpRequest, note_id: int) -> JsonResponse:
    note = await Note.objects.filter(pk=note_id).afirst()
    count = await Note.objects.acount()
    return JsonResponse(
        {"body": note.body if note else None, "count": count, "pid": os.getpid()},
        status=200 if note else 404,
    )


@csrf_exempt
async def awrite(request: HttpRequest) -> JsonResponse:
    note = await Note.objects.acreate(body=request.GET.get("body", "x"))
    bodies = [n.body async for n in Note.objects.filter(pk__lte=note.pk).order_by("-pk")[:3]]
    return JsonResponse({"id": note.pk, "pid": os.getpid(), "latest": bodies})
