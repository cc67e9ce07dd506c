{% test unique_edge(model) %}
select left_node, right_node, count(*) as n
from {{ model }}
group by left_node, right_node
having count(*) > 1
{% endtest %}
