-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    l.realm_id,
    l.vendor_credit_id,
    l.line_index,
    l.line_id,
    l.line_num,
    l.detail_type,
    l.description,
    l.amount,
    l.account_id,
    l.account_name,
    l.item_id,
    l.item_name,
    l.qty,
    l.unit_price,
    l.tax_code,
    l.customer_id,
    l.billable_status,
    l.class_id
from {{ source('qbo', 'vendor_credit_lines') }} as l
join {{ source('qbo', 'vendor_credits') }} as p
  on p.realm_id = l.realm_id and p.id = l.vendor_credit_id
where p.deleted_at is null
