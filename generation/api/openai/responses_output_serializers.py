"""Response schemas of OpenAI's Responses API (/v1/responses), for the OpenAPI schema: the
response object, its output items (an assistant message, function calls), and the typed
events of its stream."""

from drf_spectacular.utils import PolymorphicProxySerializer
from rest_framework import serializers

from generation.api.openai.responses_serializers import ResponsesFunctionToolSerializer
from generation.api.openapi import EventStreamSerializer


class ResponsesOutputTextSerializer(serializers.Serializer):
    type = serializers.CharField(help_text='"output_text"')
    text = serializers.CharField(allow_blank=True)
    annotations = serializers.ListField(child=serializers.JSONField(), help_text="Always empty.")
    logprobs = serializers.ListField(child=serializers.JSONField(), help_text="Always empty.")


class ResponsesOutputMessageSerializer(serializers.Serializer):
    id = serializers.CharField()
    type = serializers.CharField(help_text='"message"')
    role = serializers.CharField(help_text='"assistant"')
    status = serializers.ChoiceField(choices=["in_progress", "completed", "incomplete"])
    content = ResponsesOutputTextSerializer(many=True)


class ResponsesFunctionCallSerializer(serializers.Serializer):
    id = serializers.CharField()
    type = serializers.CharField(help_text='"function_call"')
    call_id = serializers.CharField(help_text="What its `function_call_output` names.")
    name = serializers.CharField()
    arguments = serializers.CharField(allow_blank=True, help_text="JSON, as text.")
    status = serializers.ChoiceField(choices=["in_progress", "completed", "incomplete"])


def output_items(**kwargs) -> PolymorphicProxySerializer:
    """An output item: a message or a function call."""
    return PolymorphicProxySerializer(
        component_name="ResponsesOutputItem",
        serializers=[ResponsesOutputMessageSerializer, ResponsesFunctionCallSerializer],
        resource_type_field_name=None,
        **kwargs,
    )


class ResponsesTokenDetailsSerializer(serializers.Serializer):
    cached_tokens = serializers.IntegerField(required=False)
    reasoning_tokens = serializers.IntegerField(required=False)


class ResponsesUsageSerializer(serializers.Serializer):
    input_tokens = serializers.IntegerField()
    input_tokens_details = ResponsesTokenDetailsSerializer()
    output_tokens = serializers.IntegerField()
    output_tokens_details = ResponsesTokenDetailsSerializer()
    total_tokens = serializers.IntegerField()


class ResponsesErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class ResponseObjectSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(help_text='"response"')
    created_at = serializers.IntegerField(help_text="Unix time.")
    status = serializers.ChoiceField(choices=["in_progress", "completed", "incomplete", "failed"])
    error = ResponsesErrorSerializer(allow_null=True, help_text="With status failed.")
    incomplete_details = serializers.JSONField(allow_null=True, help_text='{reason: "max_output_tokens"}')
    instructions = serializers.CharField(allow_null=True, allow_blank=True)
    max_output_tokens = serializers.IntegerField(allow_null=True)
    model = serializers.CharField()
    output = output_items(many=True)
    parallel_tool_calls = serializers.BooleanField()
    previous_response_id = serializers.CharField(allow_null=True)
    store = serializers.BooleanField()
    temperature = serializers.FloatField(allow_null=True)
    top_p = serializers.FloatField(allow_null=True)
    text = serializers.JSONField()
    tool_choice = serializers.JSONField(help_text="As asked; a named function {type, name}.")
    tools = ResponsesFunctionToolSerializer(many=True)
    truncation = serializers.CharField()
    usage = ResponsesUsageSerializer(allow_null=True, help_text="null until the response ends.")
    metadata = serializers.DictField(child=serializers.CharField(allow_blank=True))


class DeletedResponseSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(help_text='"response"')
    deleted = serializers.BooleanField()


class ResponsesEventSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="The event's name, as its `event:` line.")
    sequence_number = serializers.IntegerField(help_text="0, 1, 2... in the order sent.")


class ResponsesLifecycleEventSerializer(ResponsesEventSerializer):
    response = ResponseObjectSerializer()


class ResponsesOutputItemEventSerializer(ResponsesEventSerializer):
    output_index = serializers.IntegerField()
    item = output_items()


class ResponsesContentEventSerializer(ResponsesEventSerializer):
    item_id = serializers.CharField()
    output_index = serializers.IntegerField()
    content_index = serializers.IntegerField()


class ResponsesContentPartEventSerializer(ResponsesContentEventSerializer):
    part = ResponsesOutputTextSerializer()


class ResponsesTextDeltaEventSerializer(ResponsesContentEventSerializer):
    delta = serializers.CharField()
    logprobs = serializers.ListField(child=serializers.JSONField())


class ResponsesTextDoneEventSerializer(ResponsesContentEventSerializer):
    text = serializers.CharField(allow_blank=True)
    logprobs = serializers.ListField(child=serializers.JSONField())


class ResponsesArgumentsDeltaEventSerializer(ResponsesEventSerializer):
    item_id = serializers.CharField()
    output_index = serializers.IntegerField()
    delta = serializers.CharField()


class ResponsesArgumentsDoneEventSerializer(ResponsesEventSerializer):
    item_id = serializers.CharField()
    output_index = serializers.IntegerField()
    arguments = serializers.CharField(allow_blank=True)


class ResponsesErrorEventSerializer(ResponsesEventSerializer):
    code = serializers.CharField()
    message = serializers.CharField()
    param = serializers.CharField(allow_null=True)


LIFECYCLE = (ResponsesLifecycleEventSerializer,)


class ResponsesStreamEventSerializer(EventStreamSerializer):
    events = (
        ("response.created", "The response, in_progress, with no output yet.", LIFECYCLE),
        ("response.in_progress", "The same.", LIFECYCLE),
        ("response.output_item.added", "An output item begins: a message, or a function call.",
         (ResponsesOutputItemEventSerializer,)),
        ("response.content_part.added", "Its text part begins.", (ResponsesContentPartEventSerializer,)),
        ("response.output_text.delta", "A piece of text.", (ResponsesTextDeltaEventSerializer,)),
        ("response.output_text.done", "The whole text.", (ResponsesTextDoneEventSerializer,)),
        ("response.content_part.done", "The text part, whole.", (ResponsesContentPartEventSerializer,)),
        ("response.function_call_arguments.delta", "A piece of a call's arguments.",
         (ResponsesArgumentsDeltaEventSerializer,)),
        ("response.function_call_arguments.done", "A call's arguments, whole.",
         (ResponsesArgumentsDoneEventSerializer,)),
        ("response.output_item.done", "The output item, whole.", (ResponsesOutputItemEventSerializer,)),
        ("response.completed", "The last event: the whole response, with its usage.", LIFECYCLE),
        ("response.incomplete", "The last event instead when `max_output_tokens` ended the text.", LIFECYCLE),
        ("response.failed", "The last event instead when the generation failed: the response with its error.",
         LIFECYCLE),
        ("error", "The last event instead on a failure of the service itself.", (ResponsesErrorEventSerializer,)),
    )
