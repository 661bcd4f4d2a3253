//! Canonical units for quantity search: a quantity indexed or searched in a
//! common UCUM unit is also compared in its canonical unit, so that
//! `value-quantity=1|http://unitsofmeasure.org|kg` finds `1000 g`.

pub(crate) const UCUM: &str = "http://unitsofmeasure.org";

/// (UCUM code, canonical code, factor to the canonical unit)
const UNITS: &[(&str, &str, f64)] = &[
    // mass → g
    ("g", "g", 1.0),
    ("kg", "g", 1e3),
    ("mg", "g", 1e-3),
    ("ug", "g", 1e-6),
    ("ng", "g", 1e-9),
    ("[lb_av]", "g", 453.59237),
    ("[oz_av]", "g", 28.349523125),
    // length → m
    ("m", "m", 1.0),
    ("km", "m", 1e3),
    ("cm", "m", 1e-2),
    ("mm", "m", 1e-3),
    ("um", "m", 1e-6),
    ("[in_i]", "m", 0.0254),
    ("[ft_i]", "m", 0.3048),
    // time → s
    ("s", "s", 1.0),
    ("ms", "s", 1e-3),
    ("min", "s", 60.0),
    ("h", "s", 3600.0),
    ("d", "s", 86400.0),
    ("wk", "s", 604800.0),
    ("mo", "s", 2629800.0),
    ("a", "s", 31557600.0),
    // volume → L
    ("L", "L", 1.0),
    ("l", "L", 1.0),
    ("dL", "L", 1e-1),
    ("cL", "L", 1e-2),
    ("mL", "L", 1e-3),
    ("uL", "L", 1e-6),
    // mass concentration → g/L
    ("g/L", "g/L", 1.0),
    ("g/dL", "g/L", 10.0),
    ("mg/dL", "g/L", 1e-2),
    ("mg/L", "g/L", 1e-3),
    ("ug/L", "g/L", 1e-6),
    ("ug/dL", "g/L", 1e-5),
    ("ng/mL", "g/L", 1e-6),
    ("pg/mL", "g/L", 1e-9),
    ("g/mL", "g/L", 1e3),
    // substance concentration → mol/L
    ("mol/L", "mol/L", 1.0),
    ("mmol/L", "mol/L", 1e-3),
    ("umol/L", "mol/L", 1e-6),
    ("nmol/L", "mol/L", 1e-9),
    ("pmol/L", "mol/L", 1e-12),
    // temperature differences are not convertible by a factor; Cel and
    // [degF] stay in their own units.
];

/// The value in its canonical unit, for UCUM (or unlabelled) codes Hearth
/// knows.
pub(crate) fn canonical(
    value: f64,
    system: Option<&str>,
    code: Option<&str>,
) -> Option<(f64, &'static str)> {
    if system.is_some_and(|s| s != UCUM) {
        return None;
    }
    let code = code?;
    UNITS
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(_, canonical, factor)| (value * factor, *canonical))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_units_convert_to_their_canonical_unit() {
        assert_eq!(canonical(1.0, Some(UCUM), Some("kg")), Some((1000.0, "g")));
        assert_eq!(
            canonical(185.0, Some(UCUM), Some("[lb_av]")).map(|(v, c)| (v.round(), c)),
            Some((83915.0, "g"))
        );
        assert_eq!(canonical(100.0, None, Some("mg/dL")), Some((1.0, "g/L")));
        assert_eq!(canonical(1.0, Some("http://other"), Some("kg")), None);
        assert_eq!(canonical(1.0, Some(UCUM), Some("Cel")), None);
    }
}
