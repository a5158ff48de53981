from django.db import connection
from django.http import HttpRequest, JsonResponse


def small_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok", "items": [1, 2, 3]})


def one_query(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s", [42])
        (value,) = cursor.fetchone()
    return JsonResponse({"value": value})
