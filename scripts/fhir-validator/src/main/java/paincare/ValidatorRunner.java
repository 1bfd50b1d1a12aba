package paincare;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.validation.FhirValidator;
import ca.uhn.fhir.validation.ResultSeverityEnum;
import ca.uhn.fhir.validation.SingleValidationMessage;
import ca.uhn.fhir.validation.ValidationResult;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;

/**
 * The HAPI FHIR reference validator (R4 core profiles, offline) as a long-running
 * process: one FHIR JSON resource per line on stdin, one JSON line of its messages on
 * stdout. Started once per test session, because building the validation chain and
 * loading the core definitions is what takes the time.
 */
public final class ValidatorRunner {
  private ValidatorRunner() {}

  public static void main(String[] args) throws Exception {
    FhirContext ctx = FhirContext.forR4();
    ValidationSupportChain chain = new ValidationSupportChain(
        new DefaultProfileValidationSupport(ctx),
        new CommonCodeSystemsTerminologyService(ctx),
        new InMemoryTerminologyServerValidationSupport(ctx),
        new SnapshotGeneratingValidationSupport(ctx));
    FhirValidator validator = ctx.newValidator();
    validator.registerValidatorModule(new FhirInstanceValidator(chain));
    PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
    // Warm up: the first validation loads the core profiles; the caller measures this.
    validator.validateWithResult("{\"resourceType\":\"Basic\",\"code\":{\"text\":\"warm-up\"}}");
    out.println("{\"ready\":true}");
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    String line;
    while ((line = in.readLine()) != null) {
      if (line.isBlank()) {
        continue;
      }
      StringBuilder sb = new StringBuilder("{\"messages\":[");
      try {
        ValidationResult result = validator.validateWithResult(line);
        boolean first = true;
        for (SingleValidationMessage m : result.getMessages()) {
          if (!first) {
            sb.append(',');
          }
          first = false;
          sb.append("{\"severity\":").append(quote(severity(m.getSeverity())))
              .append(",\"location\":").append(quote(m.getLocationString()))
              .append(",\"message\":").append(quote(m.getMessage())).append('}');
        }
        sb.append("]}");
      } catch (Exception e) {
        sb = new StringBuilder("{\"messages\":[{\"severity\":\"fatal\",\"location\":\"\",\"message\":")
            .append(quote(String.valueOf(e))).append("}]}");
      }
      out.println(sb);
    }
  }

  private static String severity(ResultSeverityEnum s) {
    return s == null ? "information" : s.getCode();
  }

  private static String quote(String s) {
    if (s == null) {
      return "null";
    }
    StringBuilder b = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      switch (c) {
        case '"': b.append("\\\""); break;
        case '\\': b.append("\\\\"); break;
        case '\n': b.append("\\n"); break;
        case '\r': b.append("\\r"); break;
        case '\t': b.append("\\t"); break;
        default:
          if (c < 0x20) {
            b.append(String.format("\\u%04x", (int) c));
          } else {
            b.append(c);
          }
      }
    }
    return b.append('"').toString();
  }
}
