//! Customers: who billing sells to.

use drover_core::CustomerSpec;
use drover_store::{Customer, RequestContext, Store};
use serde_json::json;

use super::Result;

/// Records a customer (its spec was checked when it was parsed).
pub async fn create_customer(
    store: &dyn Store,
    ctx: &RequestContext,
    spec: CustomerSpec,
) -> Result<Customer> {
    let mut tx = store.write().await?;
    let customer = tx.insert_customer(&spec).await?;
    tx.audit(
        ctx,
        "customer.create",
        format!("customer:{}", customer.id),
        json!({ "name": customer.spec.name, "external_ref": customer.spec.external_ref }),
    )
    .await?;
    tx.commit().await?;
    Ok(customer)
}
