from django.http import HttpRequest, JsonResponse

from postfork_tools.service.orm.django_project.models import Account, Order
from postfork_tools.service.summary import summarize
from postfork_tools.service.validation import HTTPError, positive_id


def summary(request: HttpRequest, raw_id: str) -> JsonResponse:
    try:
        account_id = positive_id(raw_id, "account id")
    except HTTPError as exc:
        return JsonResponse({"error": exc.message}, status=400)
    rows = Order.objects.filter(account_id=account_id).values_list(
        "amount_cents", "category", "created_at"
    )
    orders = list(rows)
    if not orders and not Account.objects.filter(pk=account_id).exists():
        return JsonResponse({"error": f"account {account_id} not found"}, status=404)
    return JsonResponse(summarize(account_id, orders))


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "alive"})
