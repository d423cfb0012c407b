"""The HL7 v2 scheduling interface: SIU and ADT from the EHR over MLLP, SIU back to it (docs/hl7.md)."""
