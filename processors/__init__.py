"""Pure domain logic: event in, results out. No Kafka, Faust or store imports here."""
