"""Operations declared once, as data (declaration), turned into routes that all run through
one handler (pipeline, routes) and described as OperationDefinitions (definition)."""
