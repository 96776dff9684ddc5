"""The workbench's admin pages beside the model admin (mounted under /admin/playground/)."""

from django.contrib import admin
from django.urls import path

from workbench.playground import playground_view

app_name = "workbench"

urlpatterns = [path("", admin.site.admin_view(playground_view), name="playground")]
