{# Seconds from one timestamp to a later one, as a number. #}
{% macro datediff_seconds(start, end) %}{{ return(adapter.dispatch('datediff_seconds', 'ttattribution')(start, end)) }}{% endmacro %}
{% macro default__datediff_seconds(start, end) %}(epoch({{ end }}) - epoch({{ start }})){% endmacro %}
{% macro postgres__datediff_seconds(start, end) %}extract(epoch from ({{ end }} - {{ start }})){% endmacro %}
