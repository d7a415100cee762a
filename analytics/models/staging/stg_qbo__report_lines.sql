-- Written by `make analytics-sources` from the catalog; edit the catalog instead.
select
    realm_id,
    report,
    period_start,
    period_end,
    row_index,
    column_index,
    section_path,
    row_type,
    account_id,
    label,
    column_title,
    amount
from {{ source('qbo', 'report_lines') }}
