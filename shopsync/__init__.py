"""shopify-hubspot-sync: keeps a HubSpot account in step with a Shopify store through Kafka."""

__version__ = "0.1.0"
