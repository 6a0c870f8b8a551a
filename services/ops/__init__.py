"""Operations code beside the services: ``loopline up``, service entry points, model bootstrap."""
