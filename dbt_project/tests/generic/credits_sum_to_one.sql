{% test credits_sum_to_one(model) %}
select attribution_model, purchase_id, sum(credit) as total
from {{ model }}
group by attribution_model, purchase_id
having abs(sum(credit) - 1) > 1e-9
{% endtest %}
