print("idlevit")
