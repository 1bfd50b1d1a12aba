"""The clinic's shared words: disciplines, conditions, priorities, channels."""

DISCIPLINES = ("pain_medicine", "physical_therapy", "psychology", "acupuncture")
CONDITIONS = ("diabetic_neuropathy", "post_herpetic_neuralgia",
              "chemotherapy_induced_neuropathy", "crps", "multiple_sclerosis",
              "radiculopathy", "trigeminal_neuralgia", "other")
PRIORITIES = ("urgent", "soon", "routine")
CHANNELS = ("email", "sms", "in_app")  # a person's channels (a patient may prefer one)
# what the notifier delivers on: a person's channels and a referring system's FHIR
# rest-hook (an R4 Subscription's endpoint)
DELIVERY_CHANNELS = (*CHANNELS, "rest_hook")
REFERRAL_STATUSES = ("received", "triaged", "accepted", "scheduled", "in_care", "discharged",
                     "rejected", "cancelled", "on_hold")
SCREENING_TOOLS = ("dn4", "lanss", "paindetect")
