from django.db.models import F, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404

from .models import Customer, Line


def customer(request: HttpRequest, customer_id: int) -> JsonResponse:
    found = get_object_or_404(Customer, pk=customer_id)
    recent = found.orders.prefetch_related("lines").order_by("-id")[:3]
    spent = Line.objects.filter(order__customer=found).aggregate(
        spent=Sum(F("price") * F("quantity"))
    )["spent"]
    return JsonResponse(
        {
            "name": found.name,
            "spent": str(spent or 0),
            "recent": [
                {
                    "id": o.id,
                    "status": o.status,
                    "lines": [[li.sku, li.quantity] for li in o.lines.all()],
                }
                for o in recent
            ],
        }
    )


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")
