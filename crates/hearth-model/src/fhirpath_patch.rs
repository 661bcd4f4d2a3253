// placeholder until the module lands
#[derive(Debug, thiserror::Error)]
#[error("FHIRPath Patch is not available in this build")]
pub struct FhirPathPatchError;
impl FhirPathPatchError {
    pub fn is_invalid_document(&self) -> bool {
        true
    }
}
pub fn apply(_: &mut serde_json::Value, _: &serde_json::Value) -> Result<(), FhirPathPatchError> {
    Err(FhirPathPatchError)
}
